from marketplane.cli import main

main()
