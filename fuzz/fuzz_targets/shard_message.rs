//! Arbitrary bytes as shard-protocol requests and responses: validated types or errors,
//! never panics; whatever decodes re-encodes to the same value.
#![no_main]

use andromede_cluster::net::message::{
    ShardRequest, decode_shard_request, decode_shard_response,
};
use andromede_proto::ShardId;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    if let Ok(request) = decode_shard_request(data.clone()) {
        let again = decode_shard_request(Bytes::from(request.encode())).expect("round trip");
        assert_eq!(again, request);
    }
    // The same bytes as the answer to each kind of request.
    let id = ShardId([0; 32]);
    for request in [
        ShardRequest::Get { id },
        ShardRequest::Have { ids: vec![id; 9] },
        ShardRequest::Delete { ids: vec![id] },
    ] {
        if let Ok(response) = decode_shard_response(&request, data.clone()) {
            let again = decode_shard_response(&request, Bytes::from(response.encode()))
                .expect("round trip");
            assert_eq!(again, response);
        }
    }
});
