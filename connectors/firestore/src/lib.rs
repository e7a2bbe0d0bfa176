//! Firestore destination over the google.firestore.v1 gRPC API.
