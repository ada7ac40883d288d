"""vzdump archives in and out: import reads them, export writes them."""
