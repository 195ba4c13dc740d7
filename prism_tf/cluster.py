"""A MultiWorkerMirroredStrategy that waits a bounded time for its workers.

`tf.distribute.MultiWorkerMirroredStrategy()` connects the workers of
`TF_CONFIG`'s cluster through TensorFlow's coordination service and, left to
its defaults, waits for a worker that never starts without end and without a
word; while it waits the main thread holds the GIL, so no Python timer or
signal handler runs, and the coordination service's preemption notifier
takes SIGTERM for a preemption notice. This module configures the service
the strategy would configure itself, plus a registration barrier with a
deadline, so the wait ends with `ClusterError` naming the workers that did
not connect; once connected, SIGTERM stops the process again, as it stops a
one-device run (which resumes from its last checkpoint).

The barrier needs `CoordinationServiceConfig.cluster_register_with_barrier`
(TensorFlow >= 2.16). On TF 2.15 (legacy stack) the strategy waits as
TensorFlow does.
"""

import re
import signal
from typing import List, Optional

import tensorflow as tf
# Private, and the only way in: the coordination service's config is not
# public API (the strategy itself fills it in from these modules).
from tensorflow.python.distribute import multi_worker_util
from tensorflow.python.distribute.collective_all_reduce_strategy import coordination_config_pb2
from tensorflow.python.eager import context

BOUNDED_WAIT = ("cluster_register_with_barrier"
                in coordination_config_pb2.CoordinationServiceConfig.DESCRIPTOR.fields_by_name)
_TASK = re.compile(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)")


class ClusterError(ConnectionError):
    """The workers of a multi-worker run could not connect, or one was lost."""


def multi_worker_strategy(connect_timeout_s: float) -> tf.distribute.Strategy:
    """`tf.distribute.MultiWorkerMirroredStrategy` over `TF_CONFIG`'s cluster,
    made once every worker has connected; `ClusterError` naming the missing
    ones if that takes more than `connect_timeout_s` seconds."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec()
    if BOUNDED_WAIT and resolver.task_type in ("chief", "worker"):
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=multi_worker_util.coordination_leader(cluster),
            cluster_register_timeout_in_ms=int(connect_timeout_s * 1000),
            coordinated_jobs=[coordination_config_pb2.CoordinatedJob(
                name=job, num_tasks=cluster.num_tasks(job))
                for job in ("chief", "worker") if job in cluster.jobs])
        context.context().coordination_service.cluster_register_with_barrier = True
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except tf.errors.DeadlineExceededError as error:
        raise ClusterError(_missing_workers(error.message, cluster, resolver,
                                            connect_timeout_s)) from None
    # The coordination service took SIGTERM over for preemption notices,
    # which nothing here acts on: a SIGTERM stops the worker again.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return strategy


def lost_worker_error(error: tf.errors.OpError, resume_from: str) -> ClusterError:
    """One line for a collective that failed mid-run because another worker
    stopped (`tf.errors.UnavailableError` and its kin): which worker, what
    TensorFlow saw, and the checkpoint the restarted workers resume from."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    me = f"{resolver.task_type} {resolver.task_id}"
    # TensorFlow says why after "aborted by:", naming the lost task there
    # (a reset connection's remote target, or the tasks without heartbeats).
    cause = error.message.partition("aborted by:")[2] or error.message
    lost = _tasks(cause, resolver.cluster_spec(), leave_out=resolver)
    seen = cause.strip().split("\n")[0].rstrip(":")
    return ClusterError(
        f"train.strategy=multi_worker ({me}): {', '.join(lost) or 'another worker'} stopped "
        f"mid-run (TensorFlow: {seen}); start every worker again with the same command: "
        f"the run resumes from {resume_from}")


def _missing_workers(message: str, cluster: tf.train.ClusterSpec,
                     resolver: tf.distribute.cluster_resolver.ClusterResolver,
                     timeout_s: float) -> str:
    """One line for a registration that timed out: the tasks that did not
    come (the leader's view), or the leader this worker could not reach."""
    # The names end at the first blank line; the gRPC details after it name
    # the leader again.
    stragglers = message.partition("timed out task names:")[2].strip().split("\n\n")[0]
    missing = _tasks(stragglers, cluster)
    if not missing:   # a worker that never reached the leader
        leader = multi_worker_util.coordination_leader(cluster)
        missing = [f"the coordination leader {_tasks(leader, cluster)[0]}"]
    me = f"{resolver.task_type} {resolver.task_id}"
    return (f"train.strategy=multi_worker ({me}): {', '.join(missing)} did not connect "
            f"within {timeout_s:g} s (train.connect_timeout_s); start every worker of "
            "TF_CONFIG's cluster with the same command (a slow start needs a longer "
            "timeout)")


def _tasks(text: str, cluster: tf.train.ClusterSpec,
           leave_out: Optional[tf.distribute.cluster_resolver.ClusterResolver] = None
           ) -> List[str]:
    """`job index (address)` of each task named in `text`, in order, once;
    without the task `leave_out` resolves to (this worker).

    >>> cluster = tf.train.ClusterSpec({"worker": ["a:1", "b:2"]})
    >>> _tasks("/job:worker/replica:0/task:1 /job:worker/replica:0/task:1", cluster)
    ['worker 1 (b:2)']
    """
    named = dict.fromkeys((job, int(index)) for job, index in _TASK.findall(text))
    if leave_out is not None:
        named.pop((leave_out.task_type, leave_out.task_id), None)
    return [f"{job} {index} ({cluster.task_address(job, index)})" for job, index in named]
