"""Client for the ShoeSeg background-removal service: REST and gRPC (``python -m shoeseg.client``)."""

from shoeseg.client.client import ImageRejectedError, ServiceError, ping_grpc, predict_grpc, predict_rest

__all__ = ["ImageRejectedError", "ServiceError", "ping_grpc", "predict_grpc", "predict_rest"]
