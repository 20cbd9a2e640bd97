"""PeopleSnapshot (Alldieck et al. 2018, monocular videos of people turning in A-pose) for nerfstudio.

Modules, one concept each:

* :mod:`.release` reads a subject folder as released (mp4, camera.pkl, masks and poses HDF5) into plain numpy;
* :mod:`.frame_cache` decodes the video and the masks once into image files nerfstudio can read;
* :mod:`.splits` holds the train/validation/test cuts (the per-subject table, a default for others);
* :mod:`.people_snapshot_dataparser` wires them into a nerfstudio ``DataParser`` (entry point
  ``people-snapshot``), reusing the ZJU-MoCap parser's camera conversion and image cache.
"""
