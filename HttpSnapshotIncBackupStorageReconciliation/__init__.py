"""HTTP trigger for admins: create missing snapshots and queue missing backups,
across the account or for one `container`."""
import azure.functions as func

from shared_code.surfaces.http_api import reconcile_http


def main(req: func.HttpRequest) -> func.HttpResponse:
    return reconcile_http(req)
