"""Publishing Celery messages for nodes: bulk dispatch, release of children, queue consumers."""
