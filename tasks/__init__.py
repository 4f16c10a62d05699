"""headstart's stages: pure functions on top, thin Prefect tasks below."""
