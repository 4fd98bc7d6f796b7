fn main() {
    println!("palaver");
}
