//! cards against pages served by the test, through the guard, and end to end
//! on a real bus.

mod fetching;
mod site;
mod worker;
