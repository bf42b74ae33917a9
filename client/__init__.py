"""Client-side code shared by the CLI, the API and the workers: the HTTP client of our API, the CLI's
client commands, handles of our workflows, and which task queues a live worker polls. Never imported
by workflow code."""
