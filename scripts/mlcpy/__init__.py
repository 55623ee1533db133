"""mlcpy - the Python side of MLConnector: shared code of mlc-spooler and
mlc-runtime.

Modules, one concern each:

  config        conf/mlconnector.conf plus environment overrides
  safefs        file operations under MLC_VAR that never follow a symlink
  layout        who owns what in MLC_VAR; created and checked by the spooler
  log           one-line event logging
  db            the few deployments-table transitions the spooler may write
  bundle        safe extraction and verification of spool job bundles
  requirements  requirements.txt against the installed distributions
  procs         /proc inspection: is this pid still that runtime?
  unixhttp      a small HTTP/1.1 client over AF_UNIX sockets
  sandbox       the bubblewrap + setpriv command line and resource limits;
                start() and run() of runtimes' and trainings' sandboxes
  backend       the deployment-backend interface and registry
  backend_local the local backend: sandboxed runtimes supervised on this host
  backend_remote what the kubernetes and mlsysops backends share: bundles
                for remote pods, job credentials, the spooler's records
  backend_kubernetes  runtimes as Kubernetes Deployments + Services
  backend_mlsysops    runtimes handed to the MLSysOps Northbound API
  kubemanifest  the Kubernetes objects of a deployment or training
  training_kube trainings as Kubernetes Jobs
  reconcile     the spooler loop: claim bundles, converge DB and processes
  runtime       the model runtime server (mlc-runtime)
  explain       Shapley-value explanations, used by the runtime
  drift         drift checks on recorded inferences, run by the spooler
  training      retraining jobs, run by the spooler
  redeploy      moving a model's deployments onto the version a training stored
  uploadclient  the spooler's client of POST /model/{id}/upload
  features      a deployment's input features as the API computed them
                (job.json "features", app/featurelist.c)

mlc-runtime imports only `runtime`, `explain` and `features` (and so only the standard
library, numpy, pandas and scikit-learn): nothing that knows where the
database or the config is.  The cluster image (conf/kubernetes/Dockerfile)
holds those three plus `bundle` and `safefs` (scripts/mlc-kube-fetch).
The sandbox holds copies of just these files
(sandbox.RUNTIME_FILES): a new import of the runtime must be added there.
"""
