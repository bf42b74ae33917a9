"""What the Temporal server says about the lab, read by name: which workers poll (pollers.py), which
nodes and PCs are online (liveness.py), and a task's step records wherever they are (records.py).

Shared by the API and the activities, so it imports neither, nor the workflows: it calls them by the
names in engine/contracts.py. Never imported by workflow code.
"""
