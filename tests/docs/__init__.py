"""What the README, the docs and the examples say, run as written; the architecture
held to its imports."""
