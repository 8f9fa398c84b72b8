"""The benchmarks' runners on tiny sizes."""
