"""mtlsi_ros: one ament_python package holding the pure-PyTorch core (mtlsi_core) and the ROS 2 wrapper (mtlsi_ros).

`colcon build` installs it as ros.ament_python (executables in lib/mtlsi_ros); `pip install -e .` installs the
same code and console scripts into a plain Python environment for training and evaluation without ROS.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mtlsi_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="MTLSI-Net multi-task dense perception (segmentation, depth, normals, boundaries) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["mtlsi_core", "mtlsi_core.*", "mtlsi_ros", "mtlsi_ros.*"]),
    package_data={
        "mtlsi_core": ["configs/*.yaml", "weights/*.pt", "weights/*.json", "weights/*.md"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="mtlsi_ros maintainers",
    maintainer_email="maintainers@mtlsi-ros.dev",
    entry_points={
        "console_scripts": [
            # offline tools (pure PyTorch, no ROS)
            "mtlsi-info = mtlsi_core.tools.info:main",
            "mtlsi-synth = mtlsi_core.data.synth:main",
            "mtlsi-train = mtlsi_core.training.train:main",
            "mtlsi-eval = mtlsi_core.training.evaluate:main",
            "mtlsi-export = mtlsi_core.tools.export:main",
            "mtlsi-adapt = mtlsi_core.adaptation.cli:main",
            # ROS tools and nodes
            "mtlsi-bag = mtlsi_ros.bag.cli:main",
            "perception_node = mtlsi_ros.perception_node:main",
            "mtlsi_demo = mtlsi_ros.demo:main",
        ],
    },
)
