"""Launch the mtlsi_ros perception node (ROS 2 Jazzy / Kilted).

    ros2 launch mtlsi_ros perception.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info namespace:=perception device:=cuda

The node configures and activates itself (its ``autostart`` parameter): no lifecycle manager needed. With
several cameras, list them in the ``cameras`` parameter of the config file instead of remapping ``image``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
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
    ("backend", "auto", "inference runtime: auto (TensorRT, else torch on CUDA, else ONNX Runtime on the CPU), "
                        "torch, onnx or tensorrt"),
    ("model_path", "", "model file; empty: the packaged demo checkpoint"),
    ("device", "cuda", "cuda, cuda:N or cpu (cuda falls back to cpu with a warning)"),
    ("use_sim_time", "false", "use /clock"),
    ("autostart", "true", "configure and activate on start; false under a lifecycle manager"),
    ("log_level", "info", "debug, info, warn, error or fatal"),
)


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    image = LaunchConfiguration("image")
    node = LifecycleNode(
        package="mtlsi_ros",
        executable="perception_node",
        name="perception",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("config"),
            {
                "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
                "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                "model_path": ParameterValue(LaunchConfiguration("model_path"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        # OpenMP threads that busy-wait take the CPU from ONNX Runtime's own pool (the CPU path of backend auto):
        # PASSIVE unless the caller's environment says otherwise (mtlsi_core/runtime/onnx_runtime.py measures it)
        additional_env={"OMP_WAIT_POLICY": EnvironmentVariable("OMP_WAIT_POLICY", default_value="PASSIVE")},
    )
    return LaunchDescription(args + [node])
