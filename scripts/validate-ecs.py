"""Validate ECS task definitions offline against the RegisterTaskDefinition
input shape of the ECS API model that botocore ships: unknown keys, wrong
types, missing required fields and bad enum values fail, as the API would
refuse them. Then the sidecar conventions rdsiam's README relies on."""

import json
import sys

import botocore.session
from botocore.validate import ParamValidator


def check(path, shape):
    with open(path, encoding="utf-8") as f:
        task = json.load(f)
    errors = []
    report = ParamValidator().validate(task, shape)
    if report.has_errors():
        errors.append(report.generate_report())
    # Enum values are not checked by the validator: check the ones we use.
    enums = {
        "networkMode": shape.members["networkMode"].enum,
        "requiresCompatibilities": shape.members["requiresCompatibilities"].member.enum,
    }
    if task.get("networkMode") not in enums["networkMode"]:
        errors.append(f"networkMode {task.get('networkMode')!r} not in {enums['networkMode']}")
    for c in task.get("requiresCompatibilities", []):
        if c not in enums["requiresCompatibilities"]:
            errors.append(f"requiresCompatibilities {c!r} not known")
    containers = {c["name"]: c for c in task.get("containerDefinitions", [])}
    proxy = containers.get("rdsiam-proxy")
    if proxy is None:
        errors.append("no container named rdsiam-proxy")
    else:
        if proxy.get("command", [None])[0] != "proxy":
            errors.append("rdsiam-proxy's command does not start with `proxy`")
        if not proxy.get("readonlyRootFilesystem"):
            errors.append("rdsiam-proxy must run with a read-only root filesystem")
        if str(proxy.get("user", "0")).split(":")[0] in ("0", "root"):
            errors.append("rdsiam-proxy must run as a non-root numeric user")
        if "healthCheck" not in proxy:
            errors.append("rdsiam-proxy has no healthCheck (rdsiam proxy --wait)")
    for c in containers.values():
        for dep in c.get("dependsOn", []):
            if dep["containerName"] not in containers:
                errors.append(f"{c['name']} depends on unknown {dep['containerName']}")
            if dep["condition"] == "HEALTHY" and "healthCheck" not in containers.get(dep["containerName"], {}):
                errors.append(f"{c['name']} waits for {dep['containerName']} HEALTHY, which has no healthCheck")
    return errors


def main():
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    failed = 0
    for path in sys.argv[1:]:
        errors = check(path, shape)
        if errors:
            failed += 1
            print(f"ERROR {path}:", *errors, sep="\n  ")
        else:
            print(f"INFO {path} is a valid RegisterTaskDefinition request")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
