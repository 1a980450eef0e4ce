"""HTTP trigger for ingestion pipelines: snapshot new and changed blobs of one
container (`container`, optional `prefix`) and queue a backup request for each."""
import azure.functions as func

from shared_code.surfaces.http_api import produce_http


def main(req: func.HttpRequest) -> func.HttpResponse:
    return produce_http(req)
