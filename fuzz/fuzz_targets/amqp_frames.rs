#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peregrine_fuzz::amqp_frames(data));
