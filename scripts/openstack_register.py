"""Registers what the central agent's tests need in Keystone, once: the `service`
project, the `ceilometer` user (admin in it), and the image and volumev3 services
with their endpoints in RegionOne. Reads the admin's OS_* variables.

    openstack_register.py SERVICE_PASSWORD HOST GLANCE_PORT CINDER_PORT
"""
import json
import os
import sys
import urllib.request

password, host, glance_port, cinder_port = sys.argv[1:5]
auth_url = os.environ["OS_AUTH_URL"].rstrip("/")


def call(method, path, body=None, token=None):
    request = urllib.request.Request(auth_url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("x-auth-token", token)
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
        return response.headers, (json.loads(text) if text else None)


headers, _ = call("POST", "/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": os.environ["OS_USERNAME"], "domain": {"name": "Default"}, "password": os.environ["OS_PASSWORD"]}}},
    "scope": {"project": {"name": os.environ["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}})
token = headers["X-Subject-Token"]


def find_or_create(collection, key, name, body, query=None):
    _, found = call("GET", f"/{collection}?{query or 'name=' + name}", token=token)
    if found[collection]:
        return found[collection][0]["id"]
    _, made = call("POST", f"/{collection}", {key: body}, token=token)
    return made[key]["id"]


project = find_or_create("projects", "project", "service", {"name": "service", "domain_id": "default"})
user = find_or_create("users", "user", "ceilometer",
                      {"name": "ceilometer", "domain_id": "default", "password": password, "default_project_id": project})
_, roles = call("GET", "/roles?name=admin", token=token)
admin_role = roles["roles"][0]["id"]
call("PUT", f"/projects/{project}/users/{user}/roles/{admin_role}", token=token)

for kind, name, url in [
    ("image", "glance", f"http://{host}:{glance_port}"),
    ("volumev3", "cinderv3", f"http://{host}:{cinder_port}/v3/%(project_id)s"),
]:
    service = find_or_create("services", "service", name, {"type": kind, "name": name}, query=f"type={kind}")
    _, endpoints = call("GET", f"/endpoints?service_id={service}", token=token)
    have = {e["interface"] for e in endpoints["endpoints"]}
    for interface in ["public", "internal", "admin"]:
        if interface not in have:
            call("POST", "/endpoints", {"endpoint": {
                "service_id": service, "interface": interface, "url": url, "region_id": "RegionOne"}}, token=token)
print("openstack: registered the service project, the ceilometer user, image and volumev3")
