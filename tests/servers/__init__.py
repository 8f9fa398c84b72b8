"""Every adapter under real servers, and when each starts its runtime."""
