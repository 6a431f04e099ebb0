"""Does the frontend show what the database holds? Run inside the cluster's network namespace by
minikube-e2e.sh after a restore:

    frontend_shows.py CLUSTER_ENV CA_FILE

Logs in to the frontend as the generated admin (password from the Secret), over HTTPS verified by
the deployment's CA, and checks that the table's first page lists the newest images of the
database with their people's names. Prints a one-line summary; exits non-zero with what is missing.
"""

from __future__ import annotations

import base64
import html
import sys
from pathlib import Path

import urllib3

sys.path[:0] = [str(Path(__file__).resolve().parents[2])]  # the checkout, for tests.support

from tests.support import minikube  # noqa: E402
from tests.support.web import log_in  # noqa: E402

NEWEST = 5
QUERY = ("SELECT i.path, COALESCE(p.name, '') FROM images i LEFT JOIN person p "
         f"ON p.id = i.person_id ORDER BY i.id DESC LIMIT {NEWEST}")


def main(env_file: str, ca_file: str) -> int:
    with minikube.enter(Path(env_file)) as cluster:
        ns = cluster.namespace
        # The password stays in the pod: MYSQL_PWD comes from the container's own environment.
        rows = cluster.kubectl("-n", ns, "exec", "mysql-0", "-c", "mysql", "--", "sh", "-c",
                               'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql --user=root '
                               f'--batch --skip-column-names -e "{QUERY}" kube').stdout
        newest = [line.split("\t") for line in rows.splitlines() if line]
        secret = cluster.json("-n", ns, "get", "secret", "kube-face-secret")["data"]
        password = base64.b64decode(secret["frontend-admin-password"]).decode()
        site = cluster.frontend_url()
        http = urllib3.PoolManager(retries=False, timeout=30, ca_certs=ca_file)
        session = log_in(http, site, "admin", password)
        page = http.request("GET", site + "/", headers={"Cookie": f"kubeface_session={session}"})
        text = page.data.decode()
    missing = [value for row in newest for value in row if value and html.escape(value) not in text]
    if page.status != 200 or not newest or missing:
        print(f"status {page.status}; newest rows {newest}; not on the page: {missing}")
        return 1
    people = sorted({name for _, name in newest if name})
    print(f"the frontend lists the {len(newest)} newest images and their people {people}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
