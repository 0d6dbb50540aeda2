# Per-test ctest properties, included by tests/CMakeLists.txt after the
# tests are defined. Label "slow" marks tests the sanitizer pass may skip
# (ctest -LE slow).

# A connection left idle for 60 s (default options) must stay up.
set_tests_properties(test_portal_idle PROPERTIES LABELS slow TIMEOUT 200)
