"""simple-salesforce through Latchkey's proxy, with a proxy-only key: the script never holds a
Salesforce token. Latchkey injects it, and when Salesforce answers that the session expired it
refreshes once and retries, so the script does not notice.

    LATCHKEY_URL=http://127.0.0.1:8080 LATCHKEY_API_KEY=lk_… \
        python simple_salesforce_example.py acme sf-prod

simple-salesforce keeps only the host of `instance_url` and always speaks https to it, so a small
requests adapter sends its calls to the connection's proxy URL instead.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce

#: A name simple-salesforce is given as its instance; the adapter below answers for it.
INSTANCE = "https://salesforce.via-latchkey"


class LatchkeyProxyAdapter(HTTPAdapter):
    """Sends `https://salesforce.via-latchkey/<path>` to `<proxy base>/<path>`."""

    def __init__(self, proxy_base: str) -> None:
        super().__init__()
        self.proxy_base = proxy_base.rstrip("/")

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        parts = urlsplit(request.url)
        request.url = self.proxy_base + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().send(request, **kwargs)


def salesforce(latchkey_url: str, api_key: str, workspace: str, connection: str) -> Salesforce:
    proxy_base = (
        f"{latchkey_url.rstrip('/')}/v1/workspaces/{quote(workspace, safe='')}"
        f"/connections/{quote(connection, safe='')}/proxy"
    )
    session = requests.Session()
    session.mount(INSTANCE, LatchkeyProxyAdapter(proxy_base))
    # The Latchkey key goes where a Salesforce session id would; Latchkey swaps it for the token.
    return Salesforce(instance_url=INSTANCE, session_id=api_key, session=session, version="62.0")


def main() -> None:
    workspace, connection = sys.argv[1], sys.argv[2]
    sf = salesforce(os.environ.get("LATCHKEY_URL", "http://127.0.0.1:8080"), os.environ["LATCHKEY_API_KEY"],
                    workspace, connection)
    accounts = sf.query("SELECT Id, Name FROM Account")
    print(f"{accounts['totalSize']} accounts")
    print("daily API requests left:", sf.limits()["DailyApiRequests"]["Remaining"])


if __name__ == "__main__":
    main()
