"""Reports feature: monthly statistics per runner."""
