//! Bearer-token authentication as a tower layer in front of every RPC. The public API and the
//! worker API have separate tokens, so a leaked client token cannot lease runs (and read
//! connection configs), and a worker token cannot change definitions. Health checks and
//! reflection stay open, as load balancers and `grpcurl` expect.

use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use tonic::body::Body;
use tower::{Layer, Service};

/// Which tokens are accepted; `None` turns checking off for that API.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Tokens accepted on ConnectionService, SyncService and RunService.
    pub api_tokens: Option<Vec<String>>,
    /// Token accepted on WorkerService.
    pub worker_token: Option<String>,
}

impl AuthConfig {
    fn allowed(&self, path: &str) -> Option<Vec<&str>> {
        if path.starts_with("/backflow.v1.WorkerService/") {
            self.worker_token.as_deref().map(|t| vec![t])
        } else if path.starts_with("/backflow.v1.") {
            self.api_tokens
                .as_ref()
                .map(|ts| ts.iter().map(String::as_str).collect())
        } else {
            None
        }
    }
}

/// Compares without an early exit, so response time does not reveal a token's prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Adds [`AuthService`] around the server's router.
#[derive(Debug, Clone)]
pub struct AuthLayer(pub AuthConfig);

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            config: self.0.clone(),
        }
    }
}

/// Rejects requests without an accepted `authorization: Bearer …` header with
/// `UNAUTHENTICATED` before they reach a handler.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    config: AuthConfig,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(allowed) = self.config.allowed(request.uri().path()) else {
            return Either::Left(self.inner.call(request));
        };
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(token) if allowed.iter().any(|a| same(a.as_bytes(), token.as_bytes())) => {
                Either::Left(self.inner.call(request))
            }
            Some(_) => Either::Right(futures::future::ready(Ok(tonic::Status::unauthenticated(
                "the bearer token is not valid for this API",
            )
            .into_http()))),
            None => Either::Right(futures::future::ready(Ok(tonic::Status::unauthenticated(
                "missing `authorization: Bearer <token>` metadata",
            )
            .into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_and_public_apis_have_separate_tokens() {
        let config = AuthConfig {
            api_tokens: Some(vec!["api".into()]),
            worker_token: Some("worker".into()),
        };
        assert_eq!(
            config.allowed("/backflow.v1.WorkerService/PollWork"),
            Some(vec!["worker"])
        );
        assert_eq!(
            config.allowed("/backflow.v1.SyncService/TriggerSync"),
            Some(vec!["api"])
        );
        assert_eq!(config.allowed("/grpc.health.v1.Health/Check"), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
