//! Arbitrary bytes as shard-protocol requests and responses: validated types or errors,
//! never panics; whatever decodes re-encodes to the same value.
#![no_main]

use andromede_cluster::net::message::{
    ShardRequest, decode_shard_request, decode_shard_response,
};
use andromede_proto::ShardId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_shard_request(data) {
        assert_eq!(decode_shard_request(&request.encode()).expect("round trip"), request);
    }
    // The same bytes as the answer to each kind of request.
    let id = ShardId([0; 32]);
    for request in [
        ShardRequest::Get { id },
        ShardRequest::Have { ids: vec![id; 9] },
        ShardRequest::Delete { ids: vec![id] },
    ] {
        if let Ok(response) = decode_shard_response(&request, data) {
            let again = decode_shard_response(&request, &response.encode()).expect("round trip");
            assert_eq!(again, response);
        }
    }
});
