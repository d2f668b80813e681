"""Client for the ShoeSeg background-removal service: REST and gRPC (``python -m shoeseg_client``)."""

from shoeseg_client.client import ImageRejectedError, ServiceError, ping_grpc, predict_grpc, predict_rest

__all__ = ["ImageRejectedError", "ServiceError", "ping_grpc", "predict_grpc", "predict_rest"]
