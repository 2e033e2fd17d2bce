"""mtlsi_core: MTLSI-Net multi-task dense prediction in pure PyTorch (no ROS imports)."""

__version__ = "0.1.0"
