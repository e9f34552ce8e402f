"""anywidget views: the live turn, the tool catalog and the queue."""
