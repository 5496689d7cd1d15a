"""Behaviour across resources: the backends (built in one place), submission, the job runner
and its pipeline, status documents, the event hub, uploads, estimates, presets applied to
requests, character image files, smart images, the assistant's tools, the OpenAI-images
mapping and the trace viewer's view. Services call ``api.crud`` for data and ``graph`` for runs."""
