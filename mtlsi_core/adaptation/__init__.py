"""Adapting a model trained on synthetic frames to real cameras with real, unlabelled photos (sim-to-real, issue 20):
``fourier`` restyles a training image with a real photo's low-frequency amplitude spectrum (FDA; pure numpy and
OpenCV, importing nothing from the project, so that ``mtlsi_core.data.transforms`` can use it as a training
augmentation), ``batchnorm`` re-estimates a model's BatchNorm statistics on real photos (AdaBN), ``mean_teacher`` is
the EMA teacher of ``train.self_training`` (the trainer calls it: pseudo-labels of real photos and their loss), and
``cli`` is ``mtlsi-adapt``, which writes an adapted copy of a checkpoint. The folder may read photos
(``mtlsi_core.data.photos``), checkpoints and configs, and change a model's BatchNorm buffers and the teacher it owns
and nothing else; it writes only the output file it is given (atomically) and never touches a dataset, a training
run or its input checkpoint. This ``__init__`` imports nothing, so that importing ``fourier`` pulls in no other module of the
package.
"""
