"""Drives a node through a client generated from its own API description (openapi-python-client):
lists datastores, creates a user and a token, proves the token works, removes both and proves
the token is refused afterwards. Any step answering otherwise fails the check.

    PYTHONPATH=<dir holding the generated `client` package> python api_client_check.py URL TOKEN
"""

import secrets
import sys

from client import AuthenticatedClient
from client.api.access import create_token, create_user, remove_token, remove_user, users
from client.api.datastore import datastores
from client.models import CreateToken, CreateUser


def expect(what, response, status=200):
    if response.status_code != status:
        sys.exit(f"api-client: {what}: answered {response.status_code}, expected {status}: "
                 f"{response.content.decode(errors='replace')}")
    print(f"api-client: {what}: {response.status_code}")
    return response.parsed


def session(url, token):
    return AuthenticatedClient(base_url=url, token=token, prefix="IBSAPIToken", verify_ssl=False)


def main():
    url, admin_token = sys.argv[1], sys.argv[2]
    admin = session(url, admin_token)

    stores = expect("list datastores", datastores.sync_detailed(client=admin))["data"]
    names = [s["name"] for s in stores]
    if "store1" not in names:
        sys.exit(f"api-client: store1 missing from the datastore list {names}")

    user = f"client{secrets.token_hex(4)}@ibs"
    expect("create user", create_user.sync_detailed(
        client=admin, body=CreateUser(userid=user, comment="generated client")))
    listed = [u["userid"] for u in expect("list users", users.sync_detailed(client=admin))["data"]]
    if user not in listed:
        sys.exit(f"api-client: {user} missing from the user list {listed}")

    tokenid = f"{user}!ci"
    made = expect("create token", create_token.sync_detailed(
        client=admin, body=CreateToken(tokenid=tokenid, comment="generated client")))
    own = session(url, f"{made['tokenid']}:{made['secret']}")
    # A token without grants authenticates and sees no datastore.
    seen = expect("the new token lists datastores", datastores.sync_detailed(client=own))["data"]
    if seen:
        sys.exit(f"api-client: a token without grants sees {seen}")

    expect("remove token", remove_token.sync_detailed(tokenid, client=admin))
    expect("the removed token is refused", datastores.sync_detailed(client=own), 401)
    expect("remove user", remove_user.sync_detailed(user, client=admin))
    listed = [u["userid"] for u in expect("list users", users.sync_detailed(client=admin))["data"]]
    if user in listed:
        sys.exit(f"api-client: {user} still listed after removal")
    print("api-client: ok")


if __name__ == "__main__":
    main()
