module libcsp/bench

go 1.19
