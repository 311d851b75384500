fn main() {
    dozen_build_info::emit();
}
