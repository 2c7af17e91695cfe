"""Visual scene graphs: per clip, principal-object, context and background nodes (``build``), the
HDF5 store with its PyG reader (``store``), and the stage's driver (``run``)."""
