"""Services the project starts itself on loopback for its tests and for trying it out (``make kafka``):
never needed by a pipeline run, which only connects to what its config names."""
