"""The ``nyud`` profile's renderer of the synthetic rooms: textures, lights with cast shadows, ambient occlusion, a
camera's optics and sensor.

Given the exact geometry that the ray caster (``mtlsi_core.data.raycast``) found for a view of a room
(``mtlsi_core.data.rooms``), it makes the RGB image only: ``textures`` gives surfaces real-world statistics (1/f
noise, wood grain, fabric, tiles, posters, book spines, paper), ``lighting`` shades them with coloured point,
window and lamp lights whose shadows come from shadow maps ray-cast from each light, screen-space ambient occlusion
and Blinn-Phong highlights, and ``sensor`` plays the camera (vignetting, chromatic aberration, defocus and motion
blur, shot and read noise, exposure, white balance, tone curve, JPEG). It never touches the ground truth (depth,
normals, labels, boundaries come from the cast alone) and never the ``basic`` profile's code path. Everything is
drawn from the ``numpy.random.Generator`` it is given, so a frame depends only on its seed.
"""
