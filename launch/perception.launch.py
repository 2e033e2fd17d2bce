"""Launch the mtlsi_ros perception node (ROS 2 Jazzy / Kilted).

    ros2 launch mtlsi_ros perception.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info namespace:=perception device:=cuda

Precedence: the node's own defaults < the params file (``config``) < the launch arguments given on the command line.

The node configures and activates itself (its ``autostart`` parameter): no lifecycle manager needed. With
several cameras, list them in the ``cameras`` parameter of the config file instead of remapping ``image``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("image", "image", "input image topic (sensor_msgs/Image); <image>/compressed when input_transport is compressed"),
    ("camera_info", "camera_info", "input camera_info topic (sensor_msgs/CameraInfo)"),
    ("namespace", "", "namespace of the node and of its output topics"),
    ("config", PathJoinSubstitution([FindPackageShare("mtlsi_ros"), "config", "perception.yaml"]),
     "parameter file"),
    # node parameters: "" = not given, the params file's value stands (PARAMETER_TYPES)
    ("backend", "", "inference runtime: auto (TensorRT, else torch on CUDA, else ONNX Runtime on the CPU), torch, "
                    "onnx or tensorrt (default: the params file's value; auto in the packaged one)"),
    ("model_path", "", "model file (default: the params file's value; in the packaged one '': the packaged demo "
                       "checkpoint)"),
    ("device", "", "cuda, cuda:N or cpu; cuda falls back to cpu with a warning (default: the params file's value; "
                   "cuda in the packaged one)"),
    ("use_sim_time", "", "true: use /clock (default: the params file's value; false where it has none, as the "
                         "packaged one)"),
    ("autostart", "", "true: configure and activate on start; false under a lifecycle manager (default: the params "
                      "file's value; true in the packaged one)"),
    ("log_level", "info", "debug, info, warn, error or fatal"),
)
PARAMETER_TYPES = {"backend": str, "model_path": str, "device": str, "use_sim_time": bool, "autostart": bool}


def _parameter_overrides(context) -> dict:
    """The node parameters whose launch argument was given (non-empty), typed."""
    overrides = {}
    for name, kind in PARAMETER_TYPES.items():
        text = context.launch_configurations.get(name, "")
        if text == "":
            continue
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(f"launch argument {name}:={text!r}: expected true or false")
            overrides[name] = text.lower() == "true"
        else:
            overrides[name] = ParameterValue(text, value_type=str)  # a plain str would be read as YAML
    return overrides


def _node(context) -> list:
    image = LaunchConfiguration("image")
    overrides = _parameter_overrides(context)
    return [LifecycleNode(
        package="mtlsi_ros",
        executable="perception_node",
        name="perception",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("config")] + ([overrides] if overrides else []),
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        # OpenMP threads that busy-wait take the CPU from ONNX Runtime's own pool (the CPU path of backend auto):
        # PASSIVE unless the caller's environment says otherwise (mtlsi_core/runtime/onnx_runtime.py measures it)
        additional_env={"OMP_WAIT_POLICY": EnvironmentVariable("OMP_WAIT_POLICY", default_value="PASSIVE")},
    )]


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    return LaunchDescription(args + [OpaqueFunction(function=_node)])
