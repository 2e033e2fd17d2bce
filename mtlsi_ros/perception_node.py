"""The perception node: a lifecycle node that runs one multi-task model for one or more cameras.

configure  validate parameters, load the model (a missing or corrupt file fails the transition with a message
           naming it; the process stays up), create publishers and the /diagnostics timer
activate   (reload the model if deactivate released it), subscribe, start the inference worker
deactivate unsubscribe, stop the worker, release the model (frees GPU memory)
cleanup    destroy publishers and timers

Subscription callbacks only validate and convert the image and put it in its camera's buffer; one inference
thread takes the frames that are ready across cameras and runs them as one batch through the runtime (with
``floor_anchoring``, then scales each frame's depth by its camera's floor anchor, ``mtlsi_ros.floor_anchoring``); one
publishing thread builds and publishes every output with the input's header, so the next batch's inference overlaps
the last one's messages (a hand-over of one batch: inference waits while publishing is a batch behind). Nothing a
message contains can stop the node: every error is logged (throttled) and counted in /diagnostics under a drop
reason.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from mtlsi_core.runtime import Runtime
from mtlsi_ros import qos
from mtlsi_ros.conversions import InputError, compressed_to_rgb, image_to_rgb
from mtlsi_ros.diagnostics import CameraStats, ThrottledLogger, camera_status, runtime_values
from mtlsi_ros.floor_anchoring import anchor_frame, camera_anchors
from mtlsi_ros.frames import Frame, FrameBuffers
from mtlsi_ros.params import PARAMS, NodeParams, validate
from mtlsi_ros.publishing import (CameraOutputs, build_plans, build_points_plan, focal_length_px,
                                  frame_message_class, join_topic, load_palette, output_size_arg)
from mtlsi_ros.runtime_setup import load_runtime, model_file

NODE_NAME = "perception"
QUEUE_WAIT_S = 10.0  # process_every_frame: longest a callback waits for room before dropping (queue_full)
PUBLISH_HANDOVER = 1  # inferred batches waiting for the publishing thread (more only adds latency)
CAMERA_INFO_KEEP = 10  # recent camera_info messages kept per camera for pairing by stamp


def _stamp_key(header: Any) -> tuple[int, int]:
    return int(header.stamp.sec), int(header.stamp.nanosec)


class PerceptionNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        for spec in PARAMS:
            extra = f"one of: {', '.join(map(str, spec.choices))}" if spec.choices else ""
            self.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description, additional_constraints=extra, dynamic_typing=True))
        self.p: NodeParams | None = None
        self.runtime: Runtime | None = None
        self.model_path: Path | None = None
        self._palette = None
        self._plans: list = []
        self._outputs: list[CameraOutputs] = []
        self._anchors: list | None = None  # per camera: mtlsi_core.anchoring.FloorAnchor (floor_anchoring)
        self._stats: list[CameraStats] = []
        self._infos: list[deque[CameraInfo]] = []
        self._info_matched: list[bool] = []  # per camera: the last frame found its camera_info by stamp
        self._subs: list = []
        self._buffers: FrameBuffers | None = None
        self._worker: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._to_publish: queue.Queue | None = None
        self._stop = threading.Event()
        self._active = False
        self._diag_pub = None
        self._diag_timer = None
        self._aux_group = ReentrantCallbackGroup()  # camera_info, diagnostics timer
        self._image_groups: list[MutuallyExclusiveCallbackGroup] = []
        # rclpy keys a logging call site by the first caller outside rclpy and forbids mixing severities there:
        # each severity gets its own lambda (its own call site).
        self._log_error = ThrottledLogger(lambda m: self.get_logger().error(m))
        self._log_warn = ThrottledLogger(lambda m: self.get_logger().warning(m), period_s=60.0)  # setup warnings

    # ------------------------------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            self.p = p = validate({spec.name: self.get_parameter(spec.name).value for spec in PARAMS})
            self._log_error.period_s = p.error_log_throttle_s
            self._palette = load_palette(p.palette_file) if p.palette_file else None
            self._load_runtime()
            rt = self.runtime
            self._plans = build_plans(rt.tasks, rt.channels, p, self._palette)
            points = build_points_plan(rt.tasks, p, rt.input_size, rt.canonical_focal)
            frame_cls = frame_message_class(self._plans) if p.publish_frame_msg else None
            self._anchors = camera_anchors(p, rt.tasks, rt.dataset)
        except Exception as e:  # ParamError, CheckpointError (names the file), OSError, ImportError ...
            log.error(f"configure failed: {e}")
            self._release_runtime()
            return TransitionCallbackReturn.FAILURE
        out_qos = qos.output_qos(p.output_qos_reliability,
                                 max(p.output_qos_depth, p.queue_size if p.process_every_frame else 1))
        self._outputs = [CameraOutputs(ns, self._plans,
                                       lambda t, topic: self.create_lifecycle_publisher(t, topic, out_qos),
                                       with_camera_info=p.use_camera_info, points=points, frame_cls=frame_cls)
                         for ns in p.cameras]
        self._stats = [CameraStats(ns) for ns in p.cameras]
        self._infos = [deque(maxlen=CAMERA_INFO_KEEP) for _ in p.cameras]
        self._info_matched = [True for _ in p.cameras]
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.diagnostics_qos())
        self._diag_timer = self.create_timer(p.diagnostics_period_s, self._publish_diagnostics,
                                             callback_group=self._aux_group,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))  # runs without /clock
        topics = [join_topic(ns, pl.topic) for ns in p.cameras for pl in self._plans]
        log.info(f"configured: {self.runtime.info.backend} on {self.runtime.info.device} "
                 f"({self.runtime.info.precision}), model {self.model_path}, tasks {', '.join(rt.tasks)}, "
                 f"network input {rt.input_size[0]}x{rt.input_size[1]}; outputs: {', '.join(topics)}")
        if self._anchors:
            log.info("floor anchoring: " + "; ".join(f"camera {ns!r} {a.plane.mount().describe()}"
                                                     for ns, a in zip(p.cameras, self._anchors)))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.p
        try:
            if self.runtime is None:
                self._load_runtime()
        except Exception as e:
            self.get_logger().error(f"activate failed: {e}")
            return TransitionCallbackReturn.FAILURE
        self._buffers = FrameBuffers(len(p.cameras), ordered=p.process_every_frame, capacity=p.queue_size)
        in_qos = qos.input_qos(p.qos_reliability, p.qos_depth, keep_all=p.process_every_frame)
        msg_type = CompressedImage if p.input_transport == "compressed" else Image
        suffix = "image/compressed" if p.input_transport == "compressed" else "image"
        self._image_groups = [MutuallyExclusiveCallbackGroup() for _ in p.cameras]
        for i, ns in enumerate(p.cameras):
            topic = join_topic(ns, suffix)
            self._subs.append(self.create_subscription(
                msg_type, topic, lambda m, i=i, topic=topic: self._on_image(m, i, topic), in_qos,
                callback_group=self._image_groups[i]))
            if p.use_camera_info:
                self._subs.append(self.create_subscription(
                    CameraInfo, join_topic(ns, "camera_info"), lambda m, i=i: self._infos[i].append(m),
                    qos.camera_info_qos(reliable=p.process_every_frame), callback_group=self._aux_group))
        self._start_processing()
        self._active = True
        self.get_logger().info(f"active: subscribed to {suffix} of cameras "
                               f"{', '.join(repr(c) for c in p.cameras)} "
                               f"({'process_every_frame' if p.process_every_frame else 'newest frame wins'})")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release_runtime()
        self.get_logger().info("deactivated: unsubscribed, model released")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.get_logger().info("cleaned up")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}: resetting to unconfigured")
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------------------------------ model

    def _load_runtime(self) -> None:
        p = self.p
        self.model_path = model_file(p)
        rt = load_runtime(p, self.model_path)
        for note in rt.info.notes:
            self.get_logger().warning(note)
        if getattr(rt, "selection", None) is not None:
            self.get_logger().info(f"backend {p.backend}: runs {rt.selection.describe()}")
        if p.warmup:
            rt.warmup()
        self.runtime = rt

    def _release_runtime(self) -> None:
        rt, self.runtime = self.runtime, None
        if rt is not None:
            try:
                rt.close()
            except Exception as e:
                self.get_logger().warning(f"closing the runtime failed: {e}")

    def _start_processing(self) -> None:
        """Start the inference and publishing threads on ``self._buffers`` (``_stop_processing`` ends both)."""
        self._stop.clear()
        self._to_publish = queue.Queue(maxsize=PUBLISH_HANDOVER)
        self._publisher = threading.Thread(target=self._publish_loop, args=(self._to_publish,), name="publishing",
                                           daemon=True)
        self._worker = threading.Thread(target=self._worker_loop, args=(self._to_publish,), name="inference",
                                        daemon=True)
        self._publisher.start()
        self._worker.start()

    def _stop_processing(self) -> None:
        self._active = False
        if self._buffers is not None:  # wakes callbacks waiting for room and the worker
            for f in self._buffers.close():
                self._stats[f.camera].dropped("inactive")
        self._stop.set()
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        for thread in (self._worker, self._publisher):  # the publisher sends what was inferred, then ends
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=30.0)
        self._worker = self._publisher = self._to_publish = None
        self._buffers = None

    def _teardown(self) -> None:
        self._stop_processing()
        self._release_runtime()
        for out in self._outputs:
            for pub in out.publishers():
                self.destroy_lifecycle_publisher(pub)
        self._outputs = []
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None

    # ------------------------------------------------------------------------------------------ input

    def _on_image(self, msg: Image | CompressedImage, cam: int, topic: str) -> None:
        """Validate, convert and buffer one frame; never raises."""
        now = time.monotonic()
        stats = self._stats[cam]
        try:
            stats.received(now)
            if not self._active or self._buffers is None:
                stats.dropped("inactive")
                return
            try:
                rgb = (compressed_to_rgb(msg, self.p.max_input_pixels) if isinstance(msg, CompressedImage)
                       else image_to_rgb(msg, self.p.max_input_pixels))
            except InputError as e:
                self._bad_frame(cam, e.reason, f"{self._topic_name(topic)}: {e}")
                return
            if not self._outputs[cam].has_subscribers():
                stats.dropped("no_subscribers")
                return
            try:
                replaced = self._buffers.put(Frame(cam, msg.header, rgb, now), timeout=QUEUE_WAIT_S)
            except TimeoutError as e:
                self._bad_frame(cam, "queue_full", f"{self._topic_name(topic)}: {e}")
                return
            except RuntimeError:
                stats.dropped("inactive")
                return
            if replaced is not None:
                stats.dropped("stale")
        except Exception as e:  # a message we did not foresee: count it, keep serving
            self._bad_frame(cam, "bad_size", f"{self._topic_name(topic)}: unexpected {type(e).__name__}: {e}")

    def _bad_frame(self, cam: int, reason: str, message: str) -> None:
        self._stats[cam].dropped(reason, message)
        self._log_error((cam, reason), f"dropped frame ({reason}): {message}")

    def _topic_name(self, topic: str) -> str:
        """A relative name resolved against the node's namespace (for messages; remaps are not applied)."""
        if topic.startswith("/"):
            return topic
        return "/" + "/".join(x for x in (self.get_namespace().strip("/"), topic.strip("/")) if x)

    def _camera_info_for(self, cam: int, header: Any) -> CameraInfo | None:
        """The camera_info of a frame: the one with the image's stamp, else the newest (re-stamped on output).

        camera_info and image travel on separate topics, so the one for this stamp may still be in flight: wait up
        to ``camera_info_wait_ms`` for it while a match is expected (nothing received yet, or this camera's last
        frame was matched by stamp). A driver whose stamps never match pays no wait after its first frame.
        """
        if not self.p.use_camera_info:
            return None
        infos = self._infos[cam]
        key = _stamp_key(header)
        deadline = time.monotonic() + self.p.camera_info_wait_ms / 1000.0
        expect = not infos or self._info_matched[cam]
        while True:
            for info in reversed(infos):
                if _stamp_key(info.header) == key:
                    self._info_matched[cam] = True
                    return info
            if not expect or time.monotonic() >= deadline:
                break
            time.sleep(0.002)
        self._info_matched[cam] = False
        if not infos:
            topic = self._topic_name(join_topic(self.p.cameras[cam], "camera_info"))
            self._log_warn((cam, "camera_info"), f"no camera_info received on {topic}: "
                                                 f"not publishing camera_info for this camera")
            return None
        return infos[-1]  # intrinsics rarely change: the newest one, re-stamped

    # ------------------------------------------------------------------------------------------ worker

    def _output_arg(self, frame: Frame) -> Any:
        return output_size_arg(self.p, frame.rgb.shape[:2])  # shared with mtlsi-bag infer

    def _worker_loop(self, to_publish: queue.Queue) -> None:
        buffers, window = self._buffers, self.p.batch_window_ms / 1000.0
        try:
            while not self._stop.is_set():
                try:
                    batch = buffers.take_batch(window, wait_s=0.2)
                    if batch:
                        for job in self._process(batch):
                            to_publish.put(job)  # waits while the publishing thread is a batch behind
                except Exception as e:
                    self.get_logger().error(f"inference worker: {type(e).__name__}: {e}\n"
                                            f"{traceback.format_exc()}", throttle_duration_sec=1.0)
        finally:
            to_publish.put(None)  # the publishing thread ends after what is queued

    def _publish_loop(self, to_publish: queue.Queue) -> None:
        while (job := to_publish.get()) is not None:
            try:
                self._publish(*job)
            except Exception as e:
                self.get_logger().error(f"publishing: {type(e).__name__}: {e}\n{traceback.format_exc()}",
                                        throttle_duration_sec=1.0)

    def _publish(self, frames: list[Frame], results: list, infos: list, infer_s: float, batch_size: int) -> None:
        for f, res, info in zip(frames, results, infos):
            t1 = time.monotonic()
            try:
                self._outputs[f.camera].publish(f.header, res, f.rgb, info)
            except Exception as e:
                self._bad_frame(f.camera, "publish_error", f"{type(e).__name__}: {e}")
                continue
            now = time.monotonic()
            self._stats[f.camera].answered(now, now - f.received, infer_s, batch_size, now - t1)

    def _process(self, batch: list[Frame]) -> Iterator[tuple]:
        """Run the frames of ``batch`` that have subscribers; yields ``_publish``'s arguments per output size."""
        rt = self.runtime
        ready = []
        for f in batch:
            if self._outputs[f.camera].has_subscribers():
                ready.append(f)
            else:
                self._stats[f.camera].dropped("no_subscribers")
        groups: dict[Any, list[Frame]] = {}
        for f in ready:
            groups.setdefault(self._output_arg(f), []).append(f)
        for arg, frames in groups.items():
            infos = [self._camera_info_for(f.camera, f.header) for f in frames]
            # metric depth: the runtime corrects for each camera's focal length (camera_info K[0], pixels)
            # (K is for camera_info.width; rescale to the image's width if the two differ)
            focals = [focal_length_px(i, f.rgb.shape[1]) for f, i in zip(frames, infos)]
            t0 = time.monotonic()
            try:
                results = rt.infer([f.rgb for f in frames], output_size=arg, focal_lengths=focals)
            except Exception as e:  # out of memory, backend failure ...
                for f in frames:
                    self._bad_frame(f.camera, "inference_error", f"{type(e).__name__}: {e}")
                continue
            infer_s = time.monotonic() - t0
            if self._anchors:
                for f, res, info in zip(frames, results, infos):
                    self._anchor(f, res, info)
            yield frames, results, infos, infer_s, len(ready)

    def _anchor(self, frame: Frame, outputs: dict, info: CameraInfo | None) -> None:
        """Floor-anchor one frame's depth in place (its camera's anchor); never raises: a failure leaves the depth as
        predicted and is logged."""
        cam = frame.camera
        try:
            state = anchor_frame(self._anchors[cam], outputs, info, frame.rgb.shape[:2], self.runtime.tasks)
        except Exception as e:
            self._anchors[cam].skip("error")
            self._log_error((cam, "anchoring"), f"floor anchoring failed ({type(e).__name__}: {e}): depth not anchored")
            return
        if state.status == "no_intrinsics":
            topic = self._topic_name(join_topic(self.p.cameras[cam], "camera_info"))
            self._log_warn((cam, "anchoring"), f"floor anchoring: no camera_info with intrinsics on {topic}: depth "
                                               f"published as predicted")

    # ------------------------------------------------------------------------------------------ diagnostics

    def _publish_diagnostics(self) -> None:
        try:
            now = time.monotonic()
            arr = DiagnosticArray()
            arr.header.stamp = self.get_clock().now().to_msg()
            name = self.get_fully_qualified_name()
            rt = self.runtime
            extra = runtime_values(rt, self.model_path)
            anchors = self._anchors or [None] * len(self._stats)
            for ns, stats, anchor in zip(self.p.cameras, self._stats, anchors):
                st = camera_status(name, self._topic_name(ns), stats.snapshot(now), self.p.no_image_warn_s, extra,
                                   anchor=anchor)
                if not self._active:
                    st.level, st.message = DiagnosticStatus.OK, "inactive"
                arr.status.append(st)
            if self._diag_pub is not None:
                self._diag_pub.publish(arr)
        except Exception as e:
            self.get_logger().error(f"diagnostics: {type(e).__name__}: {e}", throttle_duration_sec=5.0)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = PerceptionNode()
    cams = node.get_parameter("cameras").value
    n_cams = len(cams) if isinstance(cams, (list, tuple)) else 1
    # One thread per camera's image callbacks (they block in process_every_frame mode), plus services,
    # camera_info and diagnostics. Reconfiguring with more cameras than at start shares the threads.
    executor = MultiThreadedExecutor(num_threads=max(4, n_cams + 3))
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value is True:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            node._teardown()
        except Exception:
            pass
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
