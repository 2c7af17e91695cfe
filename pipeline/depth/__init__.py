"""Monocular depth for the 2.5D scene graphs (ASMP): backends, registration, the depth store."""
