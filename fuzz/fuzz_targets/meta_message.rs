//! Arbitrary bytes as metadata-protocol requests and answers: validated types or errors,
//! never panics; whatever decodes re-encodes to the same value.
#![no_main]

use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::net::meta_message::{MetaRequest, decode_meta_request, decode_meta_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_meta_request(data) {
        assert_eq!(decode_meta_request(&request.encode()).expect("round trip"), request);
    }
    let key = RecordKey { table: Table::ObjectIndex, partition: "b".into(), sort: b"k".to_vec() };
    for request in [
        MetaRequest::Get(key.clone()),
        MetaRequest::Scan {
            table: Table::ObjectIndex,
            partition: "b".into(),
            prefix: Vec::new(),
            start_after: None,
            limit: 100,
        },
    ] {
        if let Ok(response) = decode_meta_response(&request, data) {
            let again = decode_meta_response(&request, &response.encode()).expect("round trip");
            assert_eq!(again, response);
        }
    }
});
