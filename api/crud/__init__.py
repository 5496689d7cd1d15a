"""Data access, one module per resource: keyword-only functions (``create_x(*, session, ...)``)
that read and write rows and commit their own unit of work. Nothing here touches files, runs
the graph or renders text; the routes, the services, the CLI and the tests share these."""
