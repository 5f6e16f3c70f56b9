"""The worker side: start gate and reports, signal hooks, message filter, outbox, reconciler."""
