"""Register and deploy the Ridge model of bench/auth.sh with the token in
MLC_TEST_TOKEN; print "<modelid> <deployment id>"."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "t", "lib"))
import mlctap as t  # noqa: E402

t._out = lambda line: None  # the helpers' TAP lines are not wanted here
t.defer = lambda *args: None  # the model and deployment must outlive this script
t._send_test_token()
import mlcmodels as mm  # noqa: E402

reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names)
dep = "bench-auth-ridge"
if mm.deploy(model["modelid"], dep, ownerid=None).status_code != 201 or \
        (mm.wait_status(dep, seconds=120) or {}).get("status") != "deployed":
    raise SystemExit("could not deploy %s" % dep)
print(model["modelid"], dep)
