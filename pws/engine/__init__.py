"""The one engine every run goes through: mmengine's ``Runner`` plus the project's hooks and loop.

Follow one run from the command line to ``metrics.json``::

    python -m pws.classify ...      (or pws.detect)
      -> pws.engine.cli.hydra_app           Hydra composes the config; errors become one line and an exit code
      -> pws.engine.lifecycle.execute       validate (app.plan), lock the run directory, decide skip /
                                            resume / fresh, prepare the data, build the Runner, train, record
      -> mmengine Runner + pws.engine.loops.ExactResumeEpochLoop   (every epoch reseeded; mid-epoch resume)
      -> pws.engine.hooks.*                 record (metrics.json every epoch), divergence, throughput,
                                            preemption, random states, wandb
      -> <run_dir>/metrics.json             status, the table's metrics, history, throughput, versions

An app (``pws.classify.app``, ``pws.detect.app``) is an :class:`~pws.engine.app.App`: it validates its own
keys, builds its mmengine config (model, data, evaluator) and names its metrics; everything else is here.
"""
