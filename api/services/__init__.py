"""What the API does, one service per subject: tasks, nodes (and the lab's health and pause), statistics,
the timeline and metrics. They alone talk to Temporal; the routers (api/routers/) turn HTTP into calls
of them and their answers into HTTP."""
