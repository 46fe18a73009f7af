"""Sources (decode frames, pass audio packets through) and sinks (encode, mux, write)."""
