"""Workflow definitions: the model (Workflow, Node), the file loader, dynamic rules, limits."""
