"""`imageforge eval`: does the pipeline beat the prompt as written, and by how much?

prompts (prompt sets) -> arms (the four arms, through the graph) -> judges (scoring the
final images) -> store (results.jsonl, resumable) -> summary (statistics) -> report (md, html).
runner ties them together; the CLI builds the backends and shows progress.
"""
