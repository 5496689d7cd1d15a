"""The service: the FastAPI app (main.py, deps.py), core, models, crud, routes, services, web and the CLI."""
