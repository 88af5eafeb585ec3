"""Say which moto, boto3 and rdsiam a run used, at the top of the report."""

import os


def pytest_report_header(config):
    try:
        from importlib.metadata import version

        versions = f"moto {version('moto')}, boto3 {version('boto3')}, botocore {version('botocore')}"
    except Exception as err:  # the tests themselves fail loudly on this
        versions = f"moto/boto3 not installed ({err})"
    return [versions, f"rdsiam: {os.environ.get('RDSIAM_BIN', 'target/debug/rdsiam (default)')}"]
