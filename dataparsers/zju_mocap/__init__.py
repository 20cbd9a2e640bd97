"""ZJU-MoCap (raw NeuralBody layout) for nerfstudio.

Modules, one concept each:

* :mod:`.capture` reads a raw capture folder into plain numpy (no nerfstudio);
* :mod:`.camera_conversion` converts OpenCV cameras to nerfstudio's and projects points;
* :mod:`.splits` holds the train/test protocols (NeuralBody, HumanNeRF, custom);
* :mod:`.image_cache` writes downscaled / merged image and mask copies when needed;
* :mod:`.zju_dataparser` wires them into a nerfstudio ``DataParser`` (entry point ``zju-mocap``).
"""
