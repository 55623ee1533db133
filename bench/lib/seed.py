#!/usr/bin/python3
"""seed.py BASE_URL COUNT - register COUNT bench models through POST
/model/add (kinds bench-a..bench-d, tags from fast/tree-based/
accuracy-focused), over one keep-alive connection.  Prints the first
modelid."""
import http.client
import json
import sys
import urllib.parse

base, count = sys.argv[1], int(sys.argv[2])
url = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
first = None
for i in range(count):
    tags = ["bench"] + [t for t, n in (("fast", 4), ("tree-based", 3), ("accuracy-focused", 5)) if i % n == 0]
    body = {"modelname": "bench-api-%d" % i, "modelkind": "bench-" + "abcd"[i % 4],
            "hyperparameter": [{"parameter": "alpha", "value": i / 1000}],
            "modelperformance": [{"metric": "Accuracy", "order": 1, "threshold": 0.89}],
            "featurelist": [{"feature_name": "f%d" % j, "type": "cont", "kind": 0, "units": 1} for j in range(4)],
            "modeltags": tags, "drift_detection": [{"is_true": i % 2, "method": i % 3}]}
    conn.request("POST", "/model/add", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 201:
        sys.exit("POST /model/add answered %d: %s" % (resp.status, data[:300]))
    if first is None:
        first = json.loads(data)["modelid"]
print(first)
