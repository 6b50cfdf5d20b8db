from ruvicorn.main import main

main()
