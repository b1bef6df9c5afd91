fn main() {
    use std::mem::size_of;
    println!("Flow {}", size_of::<_engine::flow::Flow>());
    println!("Endpoint {}", size_of::<_engine::endpoint::Endpoint>());
    println!("Zeek {}", size_of::<_engine::zeek::ZeekObserver>());
    println!("Anomalies {}", size_of::<_engine::anomalies::Anomalies>());
    println!("Completeness {}", size_of::<_engine::completeness::Completeness>());
    println!("Transition {}", size_of::<_engine::flow::Transition>());
    println!("Segment {}", size_of::<_engine::segment::Segment>());
}
